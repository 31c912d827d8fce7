"""TaskForge's URLs plus three endpoints that do nothing, to price the framework per request.

Each answers a POST with a small JSON body and 201, as `POST /jobs` does: a plain Django
view, an empty DRF view without authentication, and one with the API's authentication (a
token lookup). All of them run behind the same middleware as the API.
"""

from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


@csrf_exempt
def plain(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True}, status=201)


class EmptyView(APIView):
    authentication_classes = ()
    permission_classes = ()

    def post(self, request: Request) -> Response:
        return Response({"ok": bool(request.data)}, status=201)


class AuthenticatedView(EmptyView):
    authentication_classes = APIView.authentication_classes
    permission_classes = (IsAuthenticated,)


urlpatterns = [
    path("ceiling/django", plain),
    path("ceiling/drf", EmptyView.as_view()),
    path("ceiling/drf-auth", AuthenticatedView.as_view()),
    path("", include("taskforge_site.urls")),
]
