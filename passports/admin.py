"""Django admin for collections (SPEC §11): staff create, rename and delete them through the
same audited services as the API (door `admin`). Passports themselves are changed only through
the API."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from core.context import Actor, Door, RequestContext

from .models import Collection
from .services import collection_create, collection_delete, collection_update


def _context(request: HttpRequest) -> RequestContext:
    return RequestContext.from_request(request, door=Door.ADMIN)


@admin.register(Collection)
class CollectionAdmin(admin.ModelAdmin):
    list_display = ["name", "public_id", "workspace", "created_at"]
    search_fields = ["name", "public_id", "workspace__slug"]
    list_select_related = ["workspace"]
    fields = ["workspace", "name"]

    def get_readonly_fields(
        self, request: HttpRequest, obj: Collection | None = None
    ) -> list[str]:
        return ["workspace"] if obj is not None else []

    def save_model(self, request: HttpRequest, obj: Collection, form: object, change: bool) -> None:
        actor = Actor.for_user(request.user)
        if change:
            collection_update(
                collection=Collection.objects.select_related("workspace").get(pk=obj.pk),
                name=obj.name, actor=actor, context=_context(request),
            )
        else:
            created = collection_create(
                workspace=obj.workspace, name=obj.name, actor=actor, context=_context(request)
            )
            obj.pk, obj.public_id = created.pk, created.public_id

    def delete_model(self, request: HttpRequest, obj: Collection) -> None:
        collection_delete(
            collection=obj, actor=Actor.for_user(request.user), context=_context(request)
        )

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Collection]) -> None:
        for collection in queryset.select_related("workspace"):
            self.delete_model(request, collection)
