"""Open data (issue 20): the publication policy (policy.py), the dataset registry (datasets.py), the
DCAT catalogue and CKAN-compatible action routes, and the downloads. Every open route and file reads
its rows through `datasets.rows`, which passes them through `policy.publish`: the one gate."""
