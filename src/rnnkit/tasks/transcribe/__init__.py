"""Transcription: an encoder-decoder from one sequence to another (spelling to pronunciation)."""
