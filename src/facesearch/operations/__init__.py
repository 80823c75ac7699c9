"""One function per Rekognition operation: a frozen request in, a frozen response out, errors raised."""
