"""Architecture specs and seqpipe's built-in architecture plugins."""

from seqpipe.architectures.padding import last_valid, reverse_padded, summarize
from seqpipe.architectures.spec import ArchitectureSpec, BodyConfig

__all__ = ["ArchitectureSpec", "BodyConfig", "last_valid", "reverse_padded", "summarize"]
