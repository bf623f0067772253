"""Query parameters a route does not read are refused, not ignored: a client's typo (``?stauts=open``)
or ``?csm=a&csm=b`` must not pass as if the filter had applied."""

from __future__ import annotations

from collections import Counter
from typing import Any

from fastapi import HTTPException, Request, status


def declared_query_params(dependant: Any) -> dict[str, bool]:
    """Every query parameter a route reads (by alias, as sent), its dependencies' included, and
    whether it takes several values (a list)."""
    from fastapi._compat import field_annotation_is_sequence

    names = {getattr(p, "alias", None) or p.name: field_annotation_is_sequence(p.field_info.annotation)
             for p in dependant.query_params}
    for sub in dependant.dependencies:
        names.update(declared_query_params(sub))
    return names


def refuse_unknown_query(request: Request) -> None:
    """422 naming each query parameter the matched route does not read, or gives more than once where
    it takes one value."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or not request.query_params:
        return
    declared: dict[str, bool] | None = getattr(route, "_declared_query", None)
    if declared is None:
        declared = declared_query_params(dependant)
        route._declared_query = declared  # type: ignore[union-attr]
    sent = Counter(name for name, _ in request.query_params.multi_items())
    problems = sorted([(name, "unknown query parameter") for name in sent if name not in declared]
                      + [(name, "given more than once; it takes one value") for name, n in sent.items()
                         if n > 1 and name in declared and not declared[name]])
    if problems:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=[
            {"loc": ["query", name], "msg": msg, "type": "query_parameter"} for name, msg in problems])
