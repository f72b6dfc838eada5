"""
The backend API: HTTP endpoints with which a team's own servers publish
into rooms, look at them and disconnect users, authenticated by API keys.

  - L{keys}: the keys (C{--api-key-file}), reread when their file changes.
  - L{resource}: the C{/api} resource tree, JSON in and out.
  - L{control}: what each process does with a disconnect sent to all.
  - L{openapi}: the OpenAPI 3 document the resource serves and is tested
    against.
  - C{python -m wsservice.api}: a command-line client of it.
"""
