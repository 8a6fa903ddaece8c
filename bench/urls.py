"""The product's URLs, then the comparison points (bench/views.py).

The bench routes come last, so resolving them walks the product's patterns first, as resolving
`/api/v1/passports/<id>` does (`api/v1/` is the product's last include): the baseline pays the same
URL resolution as the API, not less.
"""

from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from config.urls import handler400, handler403, handler404, handler500  # noqa: F401
from config.urls import urlpatterns as product_urlpatterns

from . import views

urlpatterns = [
    *product_urlpatterns,
    path(
        "bench/baseline/<int:workspace_id>/passports/<str:public_id>",
        csrf_exempt(views.baseline_route),
    ),
    path("bench/floor/<int:workspace_id>/passports/<str:public_id>", views.floor_passport),
    path("bench/peer/passports/<str:public_id>", views.PeerPassportView.as_view()),
]
