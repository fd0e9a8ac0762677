"""Every public function, class and method of fastconv has a docstring with
an example, and every example in fastconv's modules runs and gives what it
shows (the doctests of the imported package, as
``pytest --doctest-modules fastconv`` runs them on the source tree)."""

import dataclasses
import doctest
import importlib
import inspect
import pkgutil

import pytest

import fastconv
import fastconv.compat.cs231n as cs231n
from fastconv import modules


def _public_objects():
    """(name, object) of everything a user reaches: fastconv.__all__, the
    layers' base and Summary, the optimisers' base and cs231n.__all__."""
    objects = [(f"fastconv.{n}", getattr(fastconv, n)) for n in fastconv.__all__
               if n != "__version__"]
    objects += [("fastconv.modules.Module", modules.Module),
                ("fastconv.modules.Summary", modules.Summary)]
    objects += [(f"fastconv.compat.cs231n.{n}", getattr(cs231n, n)) for n in cs231n.__all__]
    return objects


def _own_doc(raw):
    """The docstring a class attribute holds itself (not one inherited)."""
    if isinstance(raw, property):
        raw = raw.fget
    elif isinstance(raw, (staticmethod, classmethod)):
        raw = raw.__func__
    return raw.__doc__ if callable(raw) else None


def _members(cls):
    """(name, docstring) of a class's public methods and properties, and of
    __call__, each from the class in its MRO that defines it; members
    inherited from the standard library are the standard library's."""
    fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    for name in sorted(set(dir(cls))):
        if (name.startswith("_") and name not in ("__call__", "__getitem__", "__len__",
                                                  "__iter__")) or name in fields:
            continue
        owner = next(k for k in cls.__mro__ if name in vars(k))
        if not owner.__module__.startswith("fastconv"):
            continue
        raw = vars(owner)[name]
        if not (callable(raw) or isinstance(raw, (property, staticmethod, classmethod))):
            continue   # a class attribute holding data
        yield f"{owner.__qualname__}.{name}", _own_doc(raw)


def _documented():
    seen = set()
    for name, obj in _public_objects():
        yield name, obj.__doc__
        if inspect.isclass(obj):
            for member, doc in _members(obj):
                if member not in seen:
                    seen.add(member)
                    yield member, doc


DOCUMENTED = list(_documented())


@pytest.mark.parametrize("name, doc", DOCUMENTED, ids=[n for n, _ in DOCUMENTED])
def test_public_api_has_docstring_with_example(name, doc):
    assert doc and doc.strip(), f"{name} has no docstring"
    assert ">>>" in doc, f"{name}'s docstring has no example"


def test_the_methods_users_call_are_covered():
    names = {n for n, _ in DOCUMENTED}
    for expected in ("Module.__call__", "Conv2d.forward", "Conv2d.backward",
                     "_Parametrised.weight", "_Pool2d.output_shape", "Sequential.summary",
                     "Sequential.params", "Sequential.grads", "_Optimizer.step",
                     "_Optimizer.zero_grad", "Module.zero_grad", "Module.num_params"):
        assert expected in names


def _fastconv_modules():
    names = ["fastconv"]
    for info in pkgutil.walk_packages(fastconv.__path__, "fastconv."):
        leaf = info.name.rsplit(".", 1)[-1]
        if leaf == "conftest":
            continue
        names.append(info.name)
    return names


@pytest.mark.parametrize("module_name", _fastconv_modules())
def test_examples_run(module_name):
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if (exc.name or "fastconv").startswith("fastconv"):
            raise
        pytest.skip(f"{module_name} needs {exc.name}, which is not installed")
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(verbose=False)
    tests = finder.find(module, module_name)
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed"
