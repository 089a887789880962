"""What every layer stands on: where files live and whether the network may be used (``config``), the
device (``device``), train/eval state (``modes``) and name lookups with suggestions (``lookup``)."""
