"""HTTP bodies: the order and its plan, operational inputs, catalogue answers."""
