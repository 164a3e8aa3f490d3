"""Components on their own: selection, index, embedding, agreement, evaluation; no HTTP."""
