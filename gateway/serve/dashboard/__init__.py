"""`tunegate ui`: the server-rendered dashboard at /ui on `tunegate serve`."""
