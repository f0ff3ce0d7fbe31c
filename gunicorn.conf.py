# gunicorn reads this file from the folder it starts in (scripts/demo.sh and the Docker image
# also name it with -c). The access log never shows launch page tokens, registration links or
# tokens, or credentials headers (scorebridge/logredact.py).
logger_class = "scorebridge.logredact.RedactingGunicornLogger"
