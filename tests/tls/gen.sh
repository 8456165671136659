#!/usr/bin/env bash
# Regenerates the emulator's test PKI (committed; valid until 2125). Not run by the tests.
#   ca.pem / ca.key        test cluster CA
#   server.pem / server.key  API server certificate: IP 127.0.0.1, ::1; DNS localhost, kubernetes
#   other-ca.pem           an unrelated CA, for "wrong CA" tests
set -euo pipefail
cd "$(dirname "$0")"
days=36500
openssl ecparam -name prime256v1 -genkey -noout -out ca.key
openssl req -x509 -new -key ca.key -sha256 -days $days -subj "/CN=test-cluster-ca" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.pem
openssl ecparam -name prime256v1 -genkey -noout -out server.key.ec
openssl pkcs8 -topk8 -nocrypt -in server.key.ec -out server.key && rm server.key.ec
openssl req -new -key server.key -subj "/CN=kube-apiserver" -out server.csr
cat > server.ext <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc
EXT
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days $days -sha256 -extfile server.ext -out server.pem
rm -f server.csr server.ext ca.srl
openssl ecparam -name prime256v1 -genkey -noout -out other-ca.key
openssl req -x509 -new -key other-ca.key -sha256 -days $days -subj "/CN=unrelated-ca" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out other-ca.pem
rm -f other-ca.key
