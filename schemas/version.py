"""Wire-format versioning.

Rules: adding an optional field keeps the version, and readers ignore fields they do not know.
Removing or renaming a field, or changing a value's encoding, bumps SCHEMA_VERSION. Producers
write exactly SCHEMA_VERSION; consumers accept every version in SUPPORTED_VERSIONS and send any
other to the dead-letter topic.
"""

SCHEMA_VERSION = 1
SUPPORTED_VERSIONS = frozenset({1})
