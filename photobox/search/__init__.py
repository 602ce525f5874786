"""Search by description, by similar photo, and by filters.

* :mod:`photobox.search.vectors`: embedding spaces in SQLite and exact top-k vector search
  within any filter (through a compact in-memory mirror).
* :mod:`photobox.search.filters`: what the search page's filters mean in SQL.
* :mod:`photobox.search.service`: the two together, as the web views use them.

Importing the package loads none of them: numpy and the models are only needed once
someone searches.
"""
