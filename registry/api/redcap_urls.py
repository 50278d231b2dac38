"""/redcap/api/: REDCap clients insist that the API's URL ends in /api/."""
from django.urls import path

from registry.api.redcap import RedcapApiView

urlpatterns = [path("", RedcapApiView.as_view(), name="redcap_api")]
