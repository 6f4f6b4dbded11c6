"""Architecture specs and seqpipe's built-in architecture plugins."""

from seqpipe.architectures.spec import ArchitectureSpec, BodyConfig

__all__ = ["ArchitectureSpec", "BodyConfig"]
