"""Typed errors of the decision core; the server maps them to RFC 9457 problems.

They subclass ``ValueError`` so callers that only know "bad input" still catch them.
"""

from __future__ import annotations


class RoutingError(ValueError):
    """Base class: the input cannot be routed as given."""


class PredictionsRequired(RoutingError):
    """Predictive mode was asked for without the (line, node) predictions it rates with."""


class UnknownMode(RoutingError):
    """The routing mode is not one of the supported modes."""


class InvalidNetwork(RoutingError):
    """A NETWORK document is malformed; the message names the offending entry."""


class InvalidOrder(RoutingError):
    """An ORDER document is malformed; the message names the offending field."""


class InvalidPolicy(RoutingError):
    """A POLICY document failed validation; the message names the offending field."""
