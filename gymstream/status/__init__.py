"""`gymstream status`: how far each run is (facts from Kafka, the report, the stable JSON)."""
