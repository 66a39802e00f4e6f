"""GraphQL at /graphql: schema, dataloaders, depth and complexity limits."""
