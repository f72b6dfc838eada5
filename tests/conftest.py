from tests.support import serviceFactory  # noqa: F401  (a fixture)
