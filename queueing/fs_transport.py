"""kombu's filesystem transport, made safe for producers and consumers in separate processes.

kombu writes a message straight into the queue folder (open, then lock, then write), so a
consumer listing the folder can pick up the file between the open and the write, read nothing,
and fail on the JSON: the worker then stops with an unrecoverable error. Here a message is
written under another name in a staging folder on the same file system and renamed into the
queue folder, which is atomic: a consumer sees a whole message or none. A consumer claims a
message by renaming it out of the queue folder (atomic too: one consumer per message). A
message that cannot be decoded is set aside in ``rejected/`` instead of stopping the worker.
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from time import monotonic

from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

logger = logging.getLogger(__name__)


class Channel(filesystem.Channel):
    @property
    def staging_folder(self) -> Path:
        folder = Path(self.transport_options.get("staging_folder", "staging"))
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    # kombu's two base classes name the message argument differently (message, payload)
    def _put(self, queue: str, payload: dict[str, object], **kwargs: object) -> None:  # type: ignore[override]
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        staged = self.staging_folder / f"{name}.part"
        try:
            with open(staged, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.replace(staged, os.path.join(self.data_folder_out, name))
        except OSError as exc:
            staged.unlink(missing_ok=True)
            raise filesystem.ChannelError(f"Cannot add message {name!r} to the queue") from exc

    def _get(self, queue: str, timeout: float | None = None) -> dict[str, object]:
        """Claim the oldest message of ``queue`` by renaming it, read it, delete it.

        A rename within one file system is atomic, so of two consumers only one gets a message
        (kombu moves it with shutil.move, a copy when the temp folder is elsewhere).
        """
        suffix = f".{queue}.msg"
        claimed_folder = self.staging_folder
        for name in sorted(n for n in os.listdir(self.data_folder_in) if n.endswith(suffix)):
            if name.partition(".")[2] != suffix[1:]:
                continue  # a queue whose name ends like this one
            claimed = claimed_folder / f"{name}.claimed"
            try:
                os.rename(os.path.join(self.data_folder_in, name), claimed)
            except FileNotFoundError:
                continue  # another consumer took it
            try:
                payload = claimed.read_bytes()
            finally:
                claimed.unlink(missing_ok=True)
            try:
                return loads(bytes_to_str(payload))
            except ValueError as exc:  # JSONDecodeError: a file no producer of ours wrote
                rejected = Path(self.transport_options.get("rejected_folder", "rejected"))
                rejected.mkdir(parents=True, exist_ok=True)
                (rejected / name).write_bytes(payload)
                logger.error("set aside an undecodable message %s: %s", name, exc)
        raise filesystem.Empty()


class Transport(filesystem.Transport):
    Channel = Channel
