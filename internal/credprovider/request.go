package credprovider

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	credentialproviderv1 "k8s.io/kubelet/pkg/apis/credentialprovider/v1"

	"github.com/ferrypull/ferry/internal/redact"
)

// MaxRequestSize bounds the request read from stdin. A request holds an image name, a
// ServiceAccount token (about 1 KiB) and the annotations the kubelet was told to pass.
const MaxRequestSize = 1 << 20

// MaxImageLength bounds the image reference of a request.
const MaxImageLength = 4096

const (
	kindRequest  = "CredentialProviderRequest"
	kindResponse = "CredentialProviderResponse"
)

var (
	scheme = runtime.NewScheme()
	// strict rejects unknown and duplicate fields; JSON only (the kubelet sends JSON).
	strict = kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme, kjson.SerializerOptions{Strict: true})
)

func init() { utilruntime.Must(credentialproviderv1.AddToScheme(scheme)) }

// DecodeRequest reads one CredentialProviderRequest from r. It checks the apiVersion
// (credentialprovider.kubelet.k8s.io/v1 only) before decoding and the kind after, decodes
// strictly (an unknown or duplicate field is an error), and requires a parseable image. Every
// error is an *Error with ExitBadRequest, names the field, and never contains the token.
func DecodeRequest(r io.Reader) (*credentialproviderv1.CredentialProviderRequest, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxRequestSize+1))
	if err != nil {
		return nil, badRequest(fmt.Errorf("read request: %w", err))
	}
	if len(data) > MaxRequestSize {
		return nil, badRequest(fmt.Errorf("request is larger than %d bytes", MaxRequestSize))
	}
	req, err := decode(data)
	if err != nil {
		// whatever the decoder quoted, the token (if one could be found) is scrubbed
		return nil, badRequest(redact.Error(err, tokenOf(data)))
	}
	return req, nil
}

func badRequest(err error) error { return &Error{Code: ExitBadRequest, Err: err} }

func decode(data []byte) (*credentialproviderv1.CredentialProviderRequest, error) {
	if len(data) == 0 {
		return nil, errors.New("empty request: the kubelet writes a CredentialProviderRequest on stdin")
	}
	gvk, err := kjson.DefaultMetaFactory.Interpret(data)
	if err != nil {
		return nil, fmt.Errorf("request is not a JSON object with apiVersion and kind: %w", err)
	}
	if gvk.GroupVersion() != credentialproviderv1.SchemeGroupVersion {
		return nil, fmt.Errorf("apiVersion %q is not supported: want %s", gvk.GroupVersion().String(), credentialproviderv1.SchemeGroupVersion)
	}
	if gvk.Kind != kindRequest {
		return nil, fmt.Errorf("kind %q: want %s", gvk.Kind, kindRequest)
	}
	req := &credentialproviderv1.CredentialProviderRequest{}
	obj, _, err := strict.Decode(data, nil, req)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", kindRequest, err)
	}
	if obj != req {
		return nil, fmt.Errorf("decode %s: got %T", kindRequest, obj)
	}
	switch {
	case req.Image == "":
		return nil, errors.New("image: must not be empty")
	case len(req.Image) > MaxImageLength:
		return nil, fmt.Errorf("image: longer than %d characters", MaxImageLength)
	}
	if _, err := ImageHost(req.Image); err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	return req, nil
}

// tokenOf finds the serviceAccountToken in a request that may not decode, to scrub it.
func tokenOf(data []byte) string {
	var v struct {
		Token string `json:"serviceAccountToken"`
	}
	_ = json.Unmarshal(data, &v)
	return v.Token
}

// EncodeResponse writes resp as a credentialprovider.kubelet.k8s.io/v1
// CredentialProviderResponse (apiVersion and kind are set here).
func EncodeResponse(w io.Writer, resp *credentialproviderv1.CredentialProviderResponse) error {
	if resp == nil {
		return errors.New("encode response: nil")
	}
	out := resp.DeepCopy()
	out.SetGroupVersionKind(schema.GroupVersionKind{Group: credentialproviderv1.GroupName, Version: "v1", Kind: kindResponse})
	if err := strict.Encode(out, w); err != nil {
		return fmt.Errorf("encode %s: %w", kindResponse, err)
	}
	return nil
}
