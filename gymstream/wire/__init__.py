"""What crosses Kafka: msgspec structs, the shared codec, and every record key, made once."""
