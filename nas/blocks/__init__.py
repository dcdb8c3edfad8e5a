"""The blocks: one registry (:mod:`nas.blocks.registry`) of mixers, all with one constructor signature.

Importing the package imports every block module, which runs their ``@register`` decorators; a plugin module adds its
own blocks the same way (see docs/extending.md).
"""
from nas.blocks import attention, conv, dag, gating, recurrent, ssm  # noqa: F401  (registers the built-in blocks)
