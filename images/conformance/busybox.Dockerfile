# busybox, as the e2e suite asks for it (docker.io/library/busybox:1.29): our web image's static
# busybox (Debian's, 1.35) without its entrypoint. Nothing is pulled.
ARG WEB
FROM ${WEB} AS web
FROM scratch
COPY --from=web / /
CMD ["sh"]
