"""A user package outside ``transvae/`` that adds variants to transvae's registry.

Each module registers one class when imported; a config selects it by name after importing the module with
``custom_imports = dict(imports=['example_variant.<module>'])``. Nothing in ``transvae/`` is edited.
"""
