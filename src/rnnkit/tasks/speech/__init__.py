"""Speech recognition: audio in, words out, with a deep bidirectional RNN and CTC."""
