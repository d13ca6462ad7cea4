"""The views read ``request.user`` (a Django user) and ``request.jwt_claims``; no token code here."""

from django.http import JsonResponse

from jwt_wsgi.contrib.django import requires


def index(request):
    # Not protected: a valid token still makes the user known, anyone else is anonymous.
    return JsonResponse({"hello": request.user.get_username() or "anonymous"})


def health(request):
    return JsonResponse({"status": "ok"})


def me(request):
    user = request.user
    return JsonResponse({"user": user.get_username(), "id": user.pk, "authenticated": user.is_authenticated,
                         "claims": request.jwt_claims})


def item(request, item_id):
    return JsonResponse({"item": item_id, "owner": request.user.get_username()})


@requires("admin")
def admin(request):
    return JsonResponse({"admin": request.user.get_username()})


@requires(any_scope=["write", "admin"])
def editors(request):
    return JsonResponse({"editor": request.user.get_username()})
