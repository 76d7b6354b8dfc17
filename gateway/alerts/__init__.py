"""The alert lifecycle's record and its delivery: the Alert (model), replies to it (acks), SMS (sms).

Knows nothing of the detectors (:mod:`gateway.detect`) nor of who is told when
(:mod:`gateway.respond`, the layer above both); contacts reach it as protocols.
"""
