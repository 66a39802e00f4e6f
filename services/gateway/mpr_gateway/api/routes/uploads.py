"""/api/uploads: presigned uploads into the input bucket for clients without S3 credentials."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends, Response, status

from mpr_gateway.api.errors import ErrorResponse
from mpr_gateway.api.routes._responses import errors
from mpr_gateway.api.upload_schemas import CompleteRequest, PartsRequest, UploadOut, UploadRequest
from mpr_gateway.deps import Client, Uploads, require_client

router = APIRouter(
    prefix="/api/uploads",
    tags=["uploads"],
    dependencies=[Depends(require_client)],
    responses=errors(401, 422),
)
TOO_LARGE: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorResponse, "description": "The file exceeds MAX_UPLOAD_BYTES."}
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=UploadOut,
    responses={**errors(409), **TOO_LARGE},
)
async def start_upload(
    body: UploadRequest, uploads: Uploads, client: Client, response: Response
) -> UploadOut:
    """Start an upload: PUT the file to `url` (single) or each part to its URL (multipart),
    then POST …/complete. 409 when the key exists (unless overwrite), 413 above
    MAX_UPLOAD_BYTES, 422 for a key that is unsafe or not a supported media file."""
    view = await uploads.start(body.new_upload(), client)
    response.headers["Location"] = f"/api/uploads/{view.upload.id}"
    return UploadOut.of(view)


@router.get("/{upload_id}", response_model=UploadOut, responses=errors(404))
async def get_upload(upload_id: UUID, uploads: Uploads) -> UploadOut:
    """The upload; while pending, with freshly signed URLs."""
    return UploadOut.of(await uploads.get(upload_id))


@router.post("/{upload_id}/parts", response_model=UploadOut, responses=errors(404, 409))
async def sign_parts(
    upload_id: UUID, uploads: Uploads, body: PartsRequest | None = None
) -> UploadOut:
    """Fresh URLs for the parts named (to retry a part that failed); all parts for []."""
    return UploadOut.of(await uploads.part_urls(upload_id, body.part_numbers if body else []))


@router.post("/{upload_id}/complete", response_model=UploadOut, responses=errors(404, 409))
async def complete_upload(
    upload_id: UUID, uploads: Uploads, body: CompleteRequest | None = None
) -> UploadOut:
    """Complete the upload and register the object as an asset right away (then probed).

    409 while parts are missing or nothing was PUT; completing twice returns the upload."""
    given = [(p.part_number, p.etag) for p in body.parts] if body and body.parts else []
    return UploadOut.of(await uploads.complete(upload_id, given))


@router.delete(
    "/{upload_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(404, 409),
)
async def abort_upload(upload_id: UUID, uploads: Uploads) -> Response:
    """Abort a pending upload (and its multipart upload in S3)."""
    await uploads.abort(upload_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
