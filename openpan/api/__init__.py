"""The HTTP layer: parse, call one service function, shape the answer."""
