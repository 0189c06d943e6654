"""One module per stage of the graph; each node reads state and returns a partial update."""
