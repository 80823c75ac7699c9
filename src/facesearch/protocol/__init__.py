"""Rekognition's AWS JSON 1.1 protocol: service model, validation, wire mapping, dispatcher, operations."""
