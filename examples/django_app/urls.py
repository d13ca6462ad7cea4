from django.urls import path

from . import views

urlpatterns = [
    path("", views.index),
    path("api/health", views.health),
    path("api/me", views.me),
    path("api/items/<int:item_id>", views.item),
    path("api/admin", views.admin),
    path("api/editors", views.editors),
]
