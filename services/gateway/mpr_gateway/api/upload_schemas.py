"""REST models of /api/uploads."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from mpr_gateway.application.uploads import NewUpload, UploadView
from mpr_shared.keys import check_text


def _text(value: str | None) -> str | None:
    return None if value is None else check_text(value, "text")


Text = Annotated[str, AfterValidator(_text)]


class UploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str | None = Field(
        None,
        max_length=1024,
        description="Object key in the input bucket; default: the filename's last segment.",
    )
    filename: str | None = Field(None, max_length=1024, description="The file's own name.")
    size: int = Field(ge=1, description="File size in bytes (at most MAX_UPLOAD_BYTES).")
    content_type: Text | None = Field(
        None, max_length=255, description="Content-Type stored with a multipart upload."
    )
    overwrite: bool = Field(False, description="Replace an object that exists under the key.")

    def new_upload(self) -> NewUpload:
        return NewUpload(self.size, self.key, self.filename, self.content_type, self.overwrite)


class PartUrl(BaseModel):
    part_number: int
    url: str = Field(description="Presigned UploadPart URL: PUT the part's bytes to it.")


class UploadOut(BaseModel):
    id: UUID
    key: str
    bucket: str
    size: int
    mode: str = Field(description="single (one PUT to url) | multipart (a PUT per part)")
    part_size: int | None = Field(None, description="Bytes per part (the last one: the rest).")
    url: str | None = Field(None, description="Presigned PUT URL of a pending single upload.")
    parts: list[PartUrl] = Field(
        default_factory=list, description="Presigned part URLs of a pending multipart upload."
    )
    expires_at: datetime = Field(description="Pending past this, the upload is aborted.")
    status: str = Field(description="pending | completed | aborted | expired")
    asset_id: UUID | None = Field(
        None,
        description="The registered asset once completed; null while the catalog has not "
        "registered it yet (find it with GET /api/assets?prefix=<key>).",
    )
    created_at: datetime
    finished_at: datetime | None = None

    @classmethod
    def of(cls, view: UploadView) -> UploadOut:
        u = view.upload
        return cls(
            id=u.id,
            key=u.key,
            bucket=u.bucket,
            size=u.size_bytes,
            mode=u.mode,
            part_size=u.part_size,
            url=view.url,
            parts=[PartUrl(part_number=n, url=url) for n, url in view.parts],
            expires_at=u.expires_at,
            status=u.status,
            asset_id=view.asset_id,
            created_at=u.created_at,
            finished_at=u.finished_at,
        )


class PartsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    part_numbers: list[int] = Field(
        default_factory=list, max_length=10_000, description="Parts to sign again; [] for all."
    )


class CompletedPart(BaseModel):
    part_number: int = Field(ge=1, le=10_000)
    etag: str = Field(max_length=128)


class CompleteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parts: list[CompletedPart] | None = Field(
        None,
        max_length=10_000,
        description="Optional: the gateway lists the parts itself (browsers cannot read ETag "
        "without CORS ExposeHeaders); given ETags are checked against what S3 holds.",
    )
