"""`lfr batch`: footage archives through the stream path's pipeline and decisions (GPU or CPU)."""
