"""Music: polyphonic piano rolls, their likelihood, and generation by genre (issue 8, in progress)."""
