# The switchboard binary in a small image; docker-compose.yml runs the demo with it.
FROM golang:1.26.0-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/switchboard ./cmd/switchboard

FROM debian:12.8-slim
COPY --from=build /out/switchboard /usr/local/bin/switchboard
USER 65534:65534
EXPOSE 8080
ENTRYPOINT ["switchboard"]
CMD ["serve"]
