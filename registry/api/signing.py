"""Signatures and field verification through the REST API, with the web's rules (the services decide):

- GET  /api/v1/patients/<id>/signatures/      every signature of the case, newest first, each `valid`
                                              or not (then the first change after it)
- POST /api/v1/patients/<id>/signatures/      sign the case: {"password": ..., "otp": "123456"} (the code
                                              only when the PI has an authenticator); 201 with the signature
- GET  /api/v1/<table>/<id>/verification/     each field's value and whether it is verified at that value
- POST /api/v1/<table>/<id>/verification/     {"fields": [...]} verified against the source, with If-Match

The viewsets of registry.api.views take these actions from the mixins here. A refused signature is
recorded, and a wrong password counted toward the sign-in lockout (registry.security.reauthentication).
"""
import json

from axes.helpers import get_client_ip_address
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from registry import selectors
from registry.api.fields import StrictCharField
from registry.cases import case_digest
from registry.security import audit
from registry.security.reauthentication import identity_checked
from registry.services import signatures
from registry.services import verification as sdv


class SignRequestSerializer(serializers.Serializer):
    password = StrictCharField(write_only=True, trim_whitespace=False,
                                     help_text=_("Your password, asked again at every signature."))
    otp = StrictCharField(required=False, allow_blank=True, max_length=8,
                                help_text=_("The 6-digit code of your authenticator app, if you have one."))


class ChangeSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    user = StrictCharField()
    record = StrictCharField()
    action = StrictCharField()


class SignatureSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    patient_id = StrictCharField()
    signer = StrictCharField(source="username")
    signer_name = StrictCharField()
    signed_at = serializers.DateTimeField()
    meaning = StrictCharField()
    data_hash = StrictCharField(help_text=_("SHA-256 of the case as signed."))
    records = serializers.IntegerField()
    source = StrictCharField()


class SignatureStateSerializer(SignatureSerializer):
    valid = serializers.BooleanField(help_text=_("The case is as signed: no change since."))
    invalidated_by = ChangeSerializer(allow_null=True,
                                      help_text=_("The first change after the signature (null while valid, or "
                                                  "when the audit trail shows none)."))


class SignaturesSerializer(serializers.Serializer):
    patient_id = StrictCharField()
    data_hash = StrictCharField(help_text=_("SHA-256 of the case as stored now."))
    signatures = SignatureStateSerializer(many=True)


def state_row(state):
    return {**SignatureSerializer(state.signature).data, "valid": state.valid, "invalidated_by": state.change}


class SignaturesMixin:
    """The patients' viewset: its case's signatures."""

    @extend_schema(methods=["GET"], summary="List the signatures of a patient's case", tags=["patients"],
                   request=None, responses={200: SignaturesSerializer})
    @extend_schema(methods=["POST"], summary="Sign a patient's case as accurate and complete", tags=["patients"],
                   request=SignRequestSerializer,
                   responses={201: SignatureSerializer, 400: OpenApiTypes.OBJECT, 403: OpenApiTypes.OBJECT},
                   description="Only a principal investigator of the patient's centre, with the password (and "
                               "the authenticator's code, if the PI has one); only a case whose every record is "
                               "complete, verified or locked. A wrong password or code is a 400, recorded, and a "
                               "wrong password counts toward the sign-in lockout. Any later change of the case "
                               "makes the signature invalid.")
    @action(detail=True, methods=["get", "post"], url_path="signatures")
    def signatures(self, request, *args, **kwargs):
        from registry.api.views import service_errors

        patient = self.stored_record(self.pk)
        if request.method == "GET":
            case = selectors.case_load(patient)
            audit.log_read(request, patient_ids=[patient.pk])
            return Response({"patient_id": patient.pk, "data_hash": case_digest(case),
                             "signatures": [state_row(state) for state in signatures.signature_states(case)]})
        serializer = SignRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with service_errors():
            with identity_checked(request, user=request.user, patient_id=patient.pk):
                signature = signatures.case_sign(
                    user=request.user, patient=patient, password=serializer.validated_data["password"],
                    otp=serializer.validated_data.get("otp"), ip_address=get_client_ip_address(request._request),
                    source="api")
        return Response(SignatureSerializer(signature).data, status=status.HTTP_201_CREATED)


class VerifyRequestSerializer(serializers.Serializer):
    fields = serializers.ListField(child=StrictCharField(max_length=60), allow_empty=False,
                                   help_text=_("The fields checked against the source documents."))


class FieldStateSerializer(serializers.Serializer):
    field = StrictCharField()
    value = serializers.JSONField(help_text=_("The value stored now."))
    verified = serializers.BooleanField(help_text=_("Verified at the value stored now."))
    verified_value = serializers.JSONField(allow_null=True, help_text=_("The value last verified."))
    verified_by = StrictCharField(allow_null=True)
    verified_at = serializers.DateTimeField(allow_null=True)


class VerificationSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    status = StrictCharField()
    verified = serializers.IntegerField(help_text=_("Fields verified at their present value."))
    total = serializers.IntegerField()
    fields = FieldStateSerializer(many=True)


def verification_body(record):
    states = sdv.field_states(record)
    rows = [{"field": state.name, "value": json.loads(state.value), "verified": state.verified,
             "verified_value": json.loads(state.verification.value) if state.verification else None,
             "verified_by": state.verification.username if state.verification else None,
             "verified_at": state.verification.verified_at if state.verification else None} for state in states]
    return {"version": record.version, "status": record.status, "verified": sum(s.verified for s in states),
            "total": len(states), "fields": FieldStateSerializer(rows, many=True).data}


class VerificationMixin:
    """Every record viewset: source data verification of the record's fields."""

    @action(detail=True, methods=["get", "post"], url_path="verification")
    def verification(self, request, *args, **kwargs):
        from registry.api.views import etag, expected_version, service_errors

        record = self.stored_record(self.pk)
        if request.method == "POST":
            version = expected_version(request, record)
            serializer = VerifyRequestSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            with service_errors():
                record, _written = sdv.fields_verify(user=request.user, record=record, source="api",
                                                     fields=serializer.validated_data["fields"],
                                                     expected_version=version)
        else:
            audit.log_read(request, patient_ids=[record.patient_id])
        return Response(verification_body(record), headers={"ETag": etag(record.version)})


def verification_schema(table_name, one):
    """The OpenAPI description of one table's verification action."""
    from registry.api.views import ETAG, IF_MATCH

    return {
        "verification": [
            extend_schema(methods=["GET"], summary=f"Source data verification of a {one}, field by field",
                          tags=[table_name], request=None, responses={200: VerificationSerializer},
                          parameters=[ETAG]),
            extend_schema(methods=["POST"], summary=f"Verify fields of a {one} against the source", tags=[table_name],
                          request=VerifyRequestSerializer, parameters=[IF_MATCH, ETAG],
                          responses={200: VerificationSerializer, 400: OpenApiTypes.OBJECT, 403: OpenApiTypes.OBJECT,
                                     409: OpenApiTypes.OBJECT, 412: OpenApiTypes.OBJECT, 428: OpenApiTypes.OBJECT},
                          description="A monitor of the centre or a coordinator, on a complete or verified record. "
                                      "A field shows as unverified again once its value changes. When every field "
                                      "of a complete record is verified, the record becomes verified."),
        ],
    }
