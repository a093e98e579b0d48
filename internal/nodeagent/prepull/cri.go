package prepull

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ferrypull/ferry/internal/redact"
)

// Runtime is the part of a CRI runtime (containerd's CRI plugin) that pre-pull uses: image
// status, pull, removal, and the images that containers use.
type Runtime struct {
	img  runtimeapi.ImageServiceClient
	rt   runtimeapi.RuntimeServiceClient
	conn *grpc.ClientConn
}

// Dial connects to a CRI socket ("/run/containerd/containerd.sock" or "unix:///…") and checks
// that it answers.
func Dial(ctx context.Context, socket string) (*Runtime, error) {
	target := socket
	if !strings.Contains(target, "://") {
		target = "unix://" + target
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("CRI socket %s: %w", socket, err)
	}
	r := NewRuntime(runtimeapi.NewImageServiceClient(conn), runtimeapi.NewRuntimeServiceClient(conn))
	r.conn = conn
	vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := r.rt.Version(vctx, &runtimeapi.VersionRequest{}); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("CRI socket %s does not answer: %w", socket, err)
	}
	return r, nil
}

// NewRuntime wraps existing CRI clients.
func NewRuntime(img runtimeapi.ImageServiceClient, rt runtimeapi.RuntimeServiceClient) *Runtime {
	return &Runtime{img: img, rt: rt}
}

// Close closes a connection opened by Dial.
func (r *Runtime) Close() error {
	if r.conn == nil {
		return nil
	}
	return r.conn.Close()
}

// Status returns the runtime's record of ref, or nil when the image is not present.
func (r *Runtime) Status(ctx context.Context, ref string) (*runtimeapi.Image, error) {
	resp, err := r.img.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil {
		if status.Code(err) == codes.NotFound {
			return nil, nil
		}
		return nil, fmt.Errorf("CRI image status %s: %w", ref, err)
	}
	return resp.GetImage(), nil
}

// Pull pulls ref with auth (nil: anonymous) and returns the runtime's image id. The error never
// contains the password or tokens of auth.
func (r *Runtime) Pull(ctx context.Context, ref string, auth *runtimeapi.AuthConfig) (string, error) {
	resp, err := r.img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}, Auth: auth})
	if err != nil {
		var secrets []string
		if auth != nil {
			secrets = []string{auth.Password, auth.Auth, auth.IdentityToken, auth.RegistryToken}
		}
		msg := err.Error()
		if s, ok := status.FromError(err); ok {
			msg = s.Message() // the gRPC "rpc error: code = Unknown desc =" prefix says nothing
		}
		return "", errors.New(redact.Strings(msg, secrets...))
	}
	return resp.GetImageRef(), nil
}

// Remove removes ref. containerd's CRI removes every tag and digest reference of the image, so
// callers check first that no other wanted reference shares its id.
func (r *Runtime) Remove(ctx context.Context, ref string) error {
	if _, err := r.img.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
		if status.Code(err) == codes.NotFound {
			return nil
		}
		return fmt.Errorf("CRI remove image %s: %w", ref, err)
	}
	return nil
}

// ImagesInUse returns the image ids of every container the runtime knows (running or not).
func (r *Runtime) ImagesInUse(ctx context.Context) (map[string]bool, error) {
	resp, err := r.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return nil, fmt.Errorf("CRI list containers: %w", err)
	}
	out := map[string]bool{}
	for _, c := range resp.GetContainers() {
		out[c.GetImageRef()] = true
		if id := c.GetImageId(); id != "" {
			out[id] = true
		}
	}
	return out, nil
}
