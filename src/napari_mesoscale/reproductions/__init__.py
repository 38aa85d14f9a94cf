"""Reproductions of the reference papers' methods, built only on the package's public API.

Each subpackage re-implements one reference method (see ``docs/references.md``) so that the
project can compare itself with it; none of the mesoscale model's own code depends on them.
"""
