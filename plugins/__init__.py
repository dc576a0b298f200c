"""First-party s321 plugins: source connectors, mappers, validators, serializers."""
