"""Reading photos and videos: formats, metadata, thumbnails, renditions, and the sandbox that
decodes untrusted files. Modules starting with ``_`` are this package's own; other packages
use the names exported here or the public modules."""

from photobox.media._sniff import HEAD_SIZE as SNIFF_BYTES
from photobox.media._sniff import sniff

__all__ = ["SNIFF_BYTES", "sniff"]
