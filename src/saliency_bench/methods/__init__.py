"""Explanation methods: what each one is (`base.Method`), one module per family (`rise`,
`abscam`, `chance`) and the registry that every stage asks (`registry`)."""
from .base import Method, MethodConfig, Option
from .registry import (chance_ids, get_method, load_plugins, method_names, method_of_id, method_sort_key, methods,
                       reference_role, register, unregister)

__all__ = ["Method", "MethodConfig", "Option", "chance_ids", "get_method", "load_plugins", "method_names",
           "method_of_id", "method_sort_key", "methods", "reference_role", "register", "unregister"]
