"""Configuration: YAML read strictly, the search config's schema, the components it names."""
