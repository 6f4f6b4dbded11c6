"""The seqpipe plugin API: every hook a plugin can implement.

Plugins are ordinary Python modules or packages that implement these hooks with
``seqpipe.hookimpl`` and are registered from the ``seqpipe`` entry-point group.
seqpipe's own architectures are registered exactly the same way.

Hooks may gain arguments in later versions (an implementation may accept fewer
than the specification lists); no hook is ever removed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from seqpipe.architectures.spec import ArchitectureSpec

PROJECT_NAME = "seqpipe"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def seqpipe_architectures() -> list[ArchitectureSpec]:
    """Return the recurrent architectures this plugin provides.

    Each item is an :class:`seqpipe.ArchitectureSpec`: a unique ``name``, a ``build``
    callable that turns a :class:`seqpipe.BodyConfig` into a ``torch.nn.Module``
    following the body contract (see :mod:`seqpipe.architectures.spec`), and
    optionally an ONNX lowering and parameter sets for the conformance tests.

    The hook must only return data; it must not register anything or change global
    state. It is called once per process, when the registry is first used.
    """
