import type { Service, ServiceMsg } from "@nats-io/services";
import { Observable } from "rxjs";

/**
 * A NATS micro endpoint as an Observable of its messages. The endpoint is added
 * on subscribe; its subscription errors end the stream. Stopping the service
 * stops the endpoint.
 */
export function fromEndpoint(service: Service, name: string, subject: string): Observable<ServiceMsg> {
  return new Observable<ServiceMsg>((subscriber) => {
    service.addEndpoint(name, {
      subject,
      handler: (err, msg) => {
        if (err) subscriber.error(err);
        else subscriber.next(msg);
      },
    });
  });
}
