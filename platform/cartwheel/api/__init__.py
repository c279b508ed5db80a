"""The admin GraphQL API (Strawberry): schema, context, permissions, error transport."""
