"""An extension whose import fails: it must be switched off, the app must not notice."""
import not_a_module_that_exists_anywhere  # noqa: F401


def setup(ext):
    raise AssertionError("never reached")
