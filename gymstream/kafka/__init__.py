"""Kafka clients with the safe defaults, the topic layout (topics.yaml is package data), offsets."""
