"""Config layer: typed schemas, resolvers, composition, checks (validate, preflight), one-line errors.

Below it only the building blocks (data, models, tasks, callbacks, replicas, analysis)."""
