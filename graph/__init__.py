"""The iML workflow: typed state, the graph, routing, run context and the runner."""
