from django.urls import path

from config.urls import urlpatterns as product_urlpatterns

from . import views

urlpatterns = [
    path("bench/baseline/passports/<str:public_id>", views.baseline_passport),
    path("bench/peer/passports/<str:public_id>", views.PeerPassportView.as_view()),
    *product_urlpatterns,
]
